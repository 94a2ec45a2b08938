// Tokenizes Steward text with the extension's TextMate grammar, the way VS
// Code does (vscode-textmate on the Oniguruma regex engine), and checks the
// scopes of the interesting tokens. Run with `npm test`.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

async function grammar() {
  const wasm = fs.readFileSync(
    path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm"),
  );
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      textmate.parseRawGrammar(
        fs.readFileSync(path.join(__dirname, "..", "syntaxes", "steward.tmLanguage.json"), "utf8"),
        "steward.tmLanguage.json",
      ),
  });
  return registry.loadGrammar("source.steward");
}

/** Each line's tokens as [text, innermost scope]. */
function tokenize(g, text) {
  let state = textmate.INITIAL;
  const out = [];
  for (const line of text.split("\n")) {
    const result = g.tokenizeLine(line, state);
    for (const t of result.tokens) {
      out.push([line.slice(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1]]);
    }
    state = result.ruleStack;
  }
  return out;
}

function scopeOf(tokens, text) {
  const found = tokens.find(([t]) => t === text);
  assert.ok(found, `no token ${JSON.stringify(text)} in ${JSON.stringify(tokens)}`);
  return found[1];
}

(async () => {
  const g = await grammar();
  const tokens = tokenize(
    g,
    [
      "## A booking was made.",
      "event reservation.created {",
      "  risk: float # 0 to 1",
      "}",
      'when reservation.created if risk < 0.5 and channel in ["vrbo"] then send welcome',
      "rule late_checkin",
      "  when reservation.created",
      "  then",
      '    after 2h unless reservation.cancelled on id do',
      '      notify role owner "Guest {guest.first_name} arrives {format_date(check_in, "%H:%M")}"',
      "    end",
      "end",
    ].join("\n"),
  );
  assert.equal(scopeOf(tokens, "## A booking was made."), "comment.line.documentation.steward");
  assert.equal(scopeOf(tokens, "# 0 to 1"), "comment.line.number-sign.steward");
  assert.equal(scopeOf(tokens, "reservation.created"), "entity.name.type.event.steward");
  assert.equal(scopeOf(tokens, "float"), "support.type.primitive.steward");
  assert.equal(scopeOf(tokens, "0.5"), "constant.numeric.steward");
  assert.equal(scopeOf(tokens, "2h"), "constant.numeric.duration.steward");
  assert.equal(scopeOf(tokens, "and"), "keyword.operator.word.steward");
  assert.equal(scopeOf(tokens, "welcome"), "entity.name.type.message.steward");
  assert.equal(scopeOf(tokens, "late_checkin"), "entity.name.function.rule.steward");
  assert.equal(scopeOf(tokens, "reservation.cancelled"), "entity.name.type.event.steward");
  assert.equal(scopeOf(tokens, "owner"), "variable.other.constant.role.steward");
  assert.equal(scopeOf(tokens, "format_date"), "entity.name.function.call.steward");
  // Inside `{...}` of a string, code again; the string goes on after it.
  assert.equal(scopeOf(tokens, "guest"), "variable.other.steward");
  assert.equal(scopeOf(tokens, " arrives "), "string.quoted.double.steward");
  assert.equal(scopeOf(tokens, "do"), "keyword.control.steward");
  console.log(`grammar: ${tokens.length} tokens, all scopes as expected`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
