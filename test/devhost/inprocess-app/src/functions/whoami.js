// An HTTP-only app (no storage needed), started twice in one process by the programmatic API test.
const { app } = require('@azure/functions');

(globalThis.devhostLoadOrder ??= []).push('functions/whoami.js');

app.http('whoami', {
  methods: ['GET'],
  authLevel: 'function',
  route: 'whoami/{id:int}',
  handler: async (request) => ({ jsonBody: { instance: process.env.INSTANCE_NAME, id: request.params.id } }),
});
