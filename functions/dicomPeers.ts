/**
 * Timer: keeps Orthanc's DICOM peers (destinations, allowed senders) equal to the environment's.
 * Orthanc forgets peers put over REST when it restarts on its own; until they are back it refuses
 * them (a closed door, not an open one), so a minute bounds how long an allowed scanner waits.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { ensureDicomPeers } from '../shared/orthanc/destinations';
import { getServices } from '../shared/composition/services';

export async function dicomPeers(_timer: Timer, context: InvocationContext): Promise<void> {
  const { orthanc, config } = await getServices();
  await ensureDicomPeers(orthanc, config, (line) => context.log(line));
}

app.timer('dicomPeers', { schedule: '0 * * * * *', handler: dicomPeers });
