#!/usr/bin/env node
/** The `autorthanc` executable (package.json "bin"; built to dist/shared/cli/bin.js). */
import { consoleIo } from './io';
import { runCli } from './program';

void runCli(process.argv.slice(2), { io: consoleIo, env: process.env }).then((code) => {
  process.exitCode = code;
});
