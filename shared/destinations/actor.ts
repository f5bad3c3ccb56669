/**
 * Who made a change, for the destinations' audit. Behind nginx the dashboard's user logs in with
 * basic auth and nginx passes the name on as X-Remote-User, overwriting whatever a client sent
 * (deploy/nginx/default.conf.template); a caller with its own function key has no login, so nginx
 * sends no name and the change is the function key's. Without nginx, a function-key holder could
 * name anyone: the header is trusted exactly as far as the key is.
 */
export const REMOTE_USER_HEADER = 'x-remote-user';
export const FUNCTION_KEY_ACTOR = 'function-key';

/** The audit's `who` from the header's value: control characters dropped, bounded, `function-key` when empty. */
export function auditActor(remoteUser: string | null | undefined): string {
  const name = [...(remoteUser ?? '')]
    .filter((c) => c >= ' ' && c !== '\u007f')
    .join('')
    .trim()
    .slice(0, 64);
  return name === '' ? FUNCTION_KEY_ACTOR : name;
}
