#!/usr/bin/env node
/** The `autorthanc` executable (package.json "bin"; built to dist/shared/cli/bin.js). */
import { consoleIo } from './io';
import { runCli } from './program';

// A reader that stops early (`autorthanc jobs | head`) closes the pipe; that ends the command quietly.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });

void runCli(process.argv.slice(2), { io: consoleIo, env: process.env }).then((code) => {
  process.exitCode = code;
});
