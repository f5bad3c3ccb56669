// A plain CommonJS v4 app (not TypeScript, not this project's): the devhost must run any app.
const { app, output } = require('@azure/functions');

const fanout = output.storageQueue({ queueName: 'fanout-out', connection: 'AzureWebJobsStorage' });

app.http('hello', {
  methods: ['GET'],
  route: 'hello/{name}/{id:int?}',
  handler: async (request, context) => {
    context.log(`greeting ${request.params.name}`);
    return { jsonBody: { name: request.params.name, id: request.params.id ?? null, q: request.query.get('q') } };
  },
});

app.http('secure', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'secure',
  extraOutputs: [fanout],
  handler: async (request, context) => {
    const body = await request.json();
    context.extraOutputs.set(fanout, [{ a: 1, nested: { b: 2 } }, 'plain text', body]);
    return { status: 201, body: 'queued', cookies: [{ name: 'sample', value: 'yes', httpOnly: true }] };
  },
});

app.http('boom', {
  methods: ['GET'],
  handler: async () => {
    throw new Error('boom');
  },
});
app.http('nothing', { methods: ['GET'], handler: async () => undefined });

// Writes to a queue this same host listens on: the listener must poll at once, not after its back-off.
const chain = output.storageQueue({ queueName: 'chain-in', connection: 'AzureWebJobsStorage' });
app.http('enqueue', {
  methods: ['POST'],
  extraOutputs: [chain],
  handler: async (request, context) => {
    context.extraOutputs.set(chain, { sentAt: Date.now() });
    return { status: 202 };
  },
});

// local.settings.json Values become environment variables unless the environment already has them.
app.http('settings', {
  methods: ['GET'],
  handler: async () => ({ jsonBody: { greeting: process.env.SAMPLE_GREETING, ghost: process.env.GHOST_QUEUE } }),
});
