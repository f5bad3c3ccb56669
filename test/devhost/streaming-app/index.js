// Today's templates enable HTTP streaming; the devhost must refuse it at start-up, not hang requests.
const { app } = require('@azure/functions');

app.setup({ enableHttpStream: true });
app.http('streamed', { handler: async () => ({ body: 'never served' }) });
