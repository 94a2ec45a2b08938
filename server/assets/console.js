// Steward's console: the little that needs a script. Everything works
// without it; with it, times read in the viewer's zone (the UTC value stays
// on hover) and deadlines count down.
(function () {
  "use strict";
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  function left(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var text = d > 0 ? d + " d " + h + " h" : h > 0 ? h + " h " + m + " min" : m > 0 ? m + " min" : s + " s";
    return ms >= 0 ? "in " + text : text + " ago";
  }
  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var t = new Date(el.getAttribute("datetime"));
      if (isNaN(t.getTime())) return;
      el.title = el.getAttribute("datetime") + " (UTC)";
      el.textContent = format.format(t);
    });
    root.querySelectorAll("[data-countdown]").forEach(function (el) {
      var t = new Date(el.getAttribute("data-countdown"));
      if (!isNaN(t.getTime())) el.textContent = left(t.getTime() - Date.now());
    });
    root.querySelectorAll("[data-zone]").forEach(function (el) { el.textContent = zone; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    setInterval(function () { localize(document); }, 30000);
  });
  document.addEventListener("htmx:afterSwap", function (e) { localize(e.target); });
})();
