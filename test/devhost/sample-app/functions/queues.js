const { app, output } = require('@azure/functions');
const fs = require('node:fs');

const record = (entry) => fs.appendFileSync(process.env.SAMPLE_LOG, JSON.stringify(entry) + '\n');
const leaked = output.storageQueue({ queueName: 'leaked-out', connection: 'AzureWebJobsStorage' });

app.storageQueue('failing', {
  queueName: 'fails',
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) => {
    record({ fn: 'failing', message, dequeueCount: context.triggerMetadata.dequeueCount });
    throw new Error('always fails');
  },
});

app.storageQueue('jsonQueue', {
  queueName: 'json-in',
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) =>
    record({
      fn: 'jsonQueue',
      type: typeof message,
      message,
      id: context.triggerMetadata.id,
      dequeueCount: context.triggerMetadata.dequeueCount,
    }),
});

app.storageQueue('throwAfterOutput', {
  queueName: 'throw-out',
  connection: 'AzureWebJobsStorage',
  extraOutputs: [leaked],
  handler: async (message, context) => {
    context.extraOutputs.set(leaked, { should: 'never be written' });
    record({ fn: 'throwAfterOutput', dequeueCount: context.triggerMetadata.dequeueCount });
    throw new Error('fails after setting an output');
  },
});

app.storageQueue('slow', {
  queueName: 'slow-in',
  connection: 'AzureWebJobsStorage',
  handler: async (message) => {
    record({ fn: 'slow', phase: 'start', message });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    record({ fn: 'slow', phase: 'end', message });
  },
});

app.storageQueue('chained', {
  queueName: 'chain-in',
  connection: 'AzureWebJobsStorage',
  handler: async (message) => record({ fn: 'chained', sentAt: message.sentAt, receivedAt: Date.now() }),
});

// Runs far longer than the shutdown grace: its message must be released (visible again) on SIGTERM.
app.storageQueue('stuck', {
  queueName: 'stuck-in',
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) => {
    record({ fn: 'stuck', phase: 'start', dequeueCount: context.triggerMetadata.dequeueCount });
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    record({ fn: 'stuck', phase: 'end' });
  },
});

// Its queue is never created: the listener backs off and must not create it.
app.storageQueue('ghost', {
  queueName: '%GHOST_QUEUE%',
  connection: 'AzureWebJobsStorage',
  handler: async () => record({ fn: 'ghost' }),
});

// One second per message, to observe how many run at once (batchSize + newBatchThreshold at most).
app.storageQueue('parallel', {
  queueName: 'parallel-in',
  connection: 'AzureWebJobsStorage',
  handler: async (message) => {
    record({ fn: 'parallel', phase: 'start', message, at: Date.now() });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    record({ fn: 'parallel', phase: 'end', message, at: Date.now() });
  },
});

// Fails until its message has been seen three times; records when each attempt ran.
app.storageQueue('flaky', {
  queueName: 'flaky-in',
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) => {
    record({ fn: 'flaky', dequeueCount: context.triggerMetadata.dequeueCount, at: Date.now() });
    if (context.triggerMetadata.dequeueCount < 3) throw new Error('not yet');
  },
});
