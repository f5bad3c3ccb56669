// Loaded first: the worker's glob yields shallow files before deeper ones, and apps rely on their
// setup/index file running before the function files.
const { app } = require('@azure/functions');

(globalThis.devhostLoadOrder ??= []).push('setup.js');

app.setup({ capabilities: { SampleCapability: 'yes' } });
