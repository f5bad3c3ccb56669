const { app } = require('@azure/functions');
const fs = require('node:fs');

app.timer('hourly', {
  schedule: '0 0 * * * *',
  handler: async (timer) =>
    fs.appendFileSync(
      process.env.SAMPLE_LOG,
      JSON.stringify({
        fn: 'hourly',
        isPastDue: timer.isPastDue,
        next: timer.scheduleStatus && timer.scheduleStatus.next,
      }) + '\n',
    ),
});

app.hook.appStart(() => fs.appendFileSync(process.env.SAMPLE_LOG, JSON.stringify({ hook: 'appStart' }) + '\n'));
app.hook.appTerminate(() => fs.appendFileSync(process.env.SAMPLE_LOG, JSON.stringify({ hook: 'appTerminate' }) + '\n'));
app.hook.preInvocation((context) => {
  if (context.invocationContext.functionName === 'hello') {
    const original = context.functionHandler;
    context.functionHandler = async (...args) => {
      const response = await original(...args);
      response.headers = { 'x-pre-invocation': 'ran' };
      return response;
    };
  }
});

// Never due during a test run: only the admin API (POST /admin/functions/daily) runs it.
app.timer('daily', {
  schedule: '0 0 3 * * *',
  handler: async (timer, context) =>
    fs.appendFileSync(
      process.env.SAMPLE_LOG,
      JSON.stringify({ fn: 'daily', timer, invocationId: context.invocationId }) + '\n',
    ),
});

// Log hooks see every log; they may rewrite user logs (the worker applies level and message back).
app.hook.log((context) => {
  if (context.category === 'user' && context.message.includes('greeting')) {
    context.message = `${context.message} [hooked in ${context.invocationContext.functionName}]`;
  }
});

// Only when a test asks for it: every second, runOnStartup, each run longer than the period.
if (process.env.SAMPLE_TICKER) {
  app.timer('ticker', {
    schedule: '*/1 * * * * *',
    runOnStartup: true,
    handler: async (timer) => {
      fs.appendFileSync(
        process.env.SAMPLE_LOG,
        JSON.stringify({ fn: 'ticker', phase: 'start', isPastDue: timer.isPastDue, at: Date.now() }) + '\n',
      );
      await new Promise((resolve) => setTimeout(resolve, 1500));
      fs.appendFileSync(process.env.SAMPLE_LOG, JSON.stringify({ fn: 'ticker', phase: 'end', at: Date.now() }) + '\n');
    },
  });
}
