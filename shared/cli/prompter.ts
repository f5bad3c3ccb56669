/**
 * Questions asked on a terminal (or any stream of lines) with node:readline. Lines are queued as they
 * arrive, so answers piped in ahead of their question are never lost; the end of input (Ctrl-D) or
 * Ctrl-C cancels the wizard instead of taking an answer nobody gave.
 */
import { createInterface } from 'node:readline';
import { CliError } from './io';

export interface Prompter {
  /** Shows `question` and resolves with the next line, trimmed. */
  ask(question: string): Promise<string>;
  /** A line of explanation between questions. */
  say(line: string): void;
  close(): void;
}

export interface PromptStreams {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}

export function createPrompter({ input, output }: PromptStreams): Prompter {
  const terminal = (output as { isTTY?: boolean }).isTTY === true && (input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input, output, terminal });
  const lines: string[] = [];
  let waiting: ((line: string | undefined) => void) | undefined;
  let ended = false;
  rl.on('line', (line) => {
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve(line);
    } else lines.push(line);
  });
  const end = () => {
    ended = true;
    waiting?.(undefined);
    waiting = undefined;
  };
  rl.on('close', end);
  rl.on('SIGINT', () => rl.close());

  return {
    async ask(question) {
      rl.setPrompt(question);
      rl.prompt();
      const line =
        lines.length > 0
          ? lines.shift()
          : ended
            ? undefined
            : await new Promise<string | undefined>((r) => (waiting = r));
      if (line === undefined) {
        output.write('\n');
        throw new CliError('setup cancelled; nothing was written');
      }
      if (!terminal) output.write('\n');
      return line.trim();
    },
    say(line) {
      output.write(`${line}\n`);
    },
    close() {
      rl.close();
    },
  };
}
