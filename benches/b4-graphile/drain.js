// B4's peer (../shared/BENCHMARKS.md): Graphile Worker draining EVENTS
// no-op jobs with concurrency 10 on the PostgreSQL database at URL, after
// they were added in one statement. Prints `graphile <jobs/s>`.
// Usage: node drain.js URL EVENTS
const { run, runMigrations } = require("graphile-worker");
const { Pool } = require("pg");

async function main() {
  const [url, events] = [process.argv[2], parseInt(process.argv[3] || "20000", 10)];
  const pool = new Pool({ connectionString: url, max: 12 });
  pool.on("error", (e) => console.error(e));
  await runMigrations({ pgPool: pool, logger: quiet() });
  await pool.query(
    "SELECT graphile_worker.add_job('noop', json_build_object('i', g)) FROM generate_series(1, $1) g",
    [events],
  );
  const started = process.hrtime.bigint();
  const runner = await run({
    pgPool: pool,
    concurrency: 10,
    noHandleSignals: true,
    pollInterval: 100,
    logger: quiet(),
    taskList: { noop: async () => {} },
  });
  for (;;) {
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await runner.stop();
  await pool.end();
  console.log(`graphile ${Math.round(events / seconds)}`);
}

function quiet() {
  const { Logger } = require("graphile-worker");
  return new Logger(() => () => {});
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
