// An ES module in the same app: the devhost loads .mjs files with import(), as the worker does.
import { app } from '@azure/functions';

app.http('esm', { methods: ['GET'], handler: async () => ({ body: 'loaded as ESM' }) });
