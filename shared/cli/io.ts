/**
 * What every CLI command writes to and how it fails. Commands print through an Io (so tests read what
 * a person would see) and end with an exit code: 0 all is well, 1 problems found, 2 could not run
 * (unreachable, a refused key, bad arguments).
 */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

export const EXIT = { ok: 0, problems: 1, couldNotRun: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure that ends the command with `exitCode` and `message` on stderr (never a stack trace). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.couldNotRun,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const consoleIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}
