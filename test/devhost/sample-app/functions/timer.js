const { app } = require('@azure/functions');
const fs = require('node:fs');

app.timer('hourly', {
  schedule: '0 0 * * * *',
  handler: async (timer) => fs.appendFileSync(process.env.SAMPLE_LOG, JSON.stringify({ fn: 'hourly', isPastDue: timer.isPastDue, next: timer.scheduleStatus && timer.scheduleStatus.next }) + '\n'),
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
