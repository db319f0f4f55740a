#!/usr/bin/env node
/** The `overseer` command. `node dist/main.js serve` runs the server in this very process. */
import { Command, Option } from 'commander';
import { loadConfig, ConfigError } from './config.js';
import { createLogger } from './runtime/logger.js';
import { startServer, VERSION } from './server.js';
import { Store } from './store/store.js';
import { migrateToLatest } from './store/migrations.js';
import { runStatus } from './cli/status.js';
import { runTokens } from './cli/tokens.js';

const program = new Command();
program.name('overseer').description('Durable supervisor for fleets of AI agents').version(VERSION);

const dbOption = () => new Option('--database-url <url>', 'sqlite:<path> or postgres://... (env DATABASE_URL, default sqlite:./data/overseer.db)');

program
  .command('serve')
  .description('run the HTTP API and the supervisors (env: HOST, PORT, DATABASE_URL, OVERSEER_ADMIN_TOKEN, OVERSEER_SHUTDOWN_GRACE_MS, OVERSEER_CONTROL_URL_ALLOW, OVERSEER_FOUR_EYES, OVERSEER_AGENT_RATE_LIMIT, OVERSEER_INGEST_RATE_LIMIT, OVERSEER_EVALUATION_RETENTION_HOURS, LOG_LEVEL; see README)')
  .option('--host <host>', 'listen address (env HOST, default 127.0.0.1)')
  .option('--port <port>', 'listen port (env PORT, default 8080)')
  .addOption(dbOption())
  .action(async (opts: { host?: string; port?: string; databaseUrl?: string }) => {
    const config = loadConfig(process.env, opts);
    const logger = createLogger(config.logLevel);
    let server: Awaited<ReturnType<typeof startServer>> | null = null;
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        // State is consistent anyway: nothing was held only in memory.
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      logger.info({ signal }, 'signal received');
      if (!server) {
        // Still starting (opening the store, recovering): nothing is in flight, and recovery is
        // one transaction, so stopping here leaves the database as it was.
        logger.info('signal during start-up: exiting');
        process.exit(0);
      }
      server
        .shutdown(config.shutdownGraceMs)
        .then(() => {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          process.exit(0);
        })
        .catch((err) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    server = await startServer({ config, logger });
  });

program
  .command('migrate')
  .description('bring the database schema up to date and exit')
  .addOption(dbOption())
  .action(async (opts: { databaseUrl?: string }) => {
    const config = loadConfig(process.env, opts);
    const store = await Store.open({ url: config.databaseUrl });
    const applied = await migrateToLatest(store.db, store.caps);
    await store.close();
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'schema is up to date\n');
  });

program
  .command('status')
  .description('print every supervisor with its health, read from the database')
  .addOption(dbOption())
  .option('--json', 'print JSON instead of a table')
  .action(async (opts: { databaseUrl?: string; json?: boolean }) => {
    const config = loadConfig(process.env, opts);
    await runStatus(config.databaseUrl, Boolean(opts.json));
  });

const tokens = program.command('tokens').description('manage API tokens (stored as hashes; a new token is printed once)');
tokens
  .command('create')
  .description('create a token; prints it alone on the last line')
  .requiredOption('--role <role>', 'admin | operator | viewer | agent')
  .requiredOption('--name <name>', 'who or what the token is for')
  .option('--agent-id <id>', 'for --role agent: the one agent this token may act for')
  .addOption(dbOption())
  .action(async (opts: { role: string; name: string; agentId?: string; databaseUrl?: string }) => {
    await runTokens('create', loadConfig(process.env, opts).databaseUrl, opts);
  });
tokens
  .command('list')
  .description('list tokens (never their secrets)')
  .addOption(dbOption())
  .action(async (opts: { databaseUrl?: string }) => runTokens('list', loadConfig(process.env, opts).databaseUrl, opts));
tokens
  .command('revoke <id>')
  .description('revoke a token; it stops working at once')
  .addOption(dbOption())
  .action(async (id: string, opts: { databaseUrl?: string }) => runTokens('revoke', loadConfig(process.env, opts).databaseUrl, { ...opts, id }));

program.parseAsync(process.argv).catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
  process.stderr.write(`overseer: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
