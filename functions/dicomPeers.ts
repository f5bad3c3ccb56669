/**
 * Timer: keeps Orthanc's DICOM peers (destinations, allowed senders) equal to the environment's.
 * Orthanc forgets peers put over REST when it restarts on its own; until they are back it refuses
 * them (a closed door, not an open one), so a minute bounds how long an allowed scanner waits.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { ensureDicomPeers } from '../shared/orthanc/destinations';
import { getServices } from '../shared/composition/services';

export async function dicomPeers(_timer: Timer, context: InvocationContext): Promise<void> {
  const { orthanc, config, destinations } = await getServices();
  // The dashboard's destinations too (Table storage): Orthanc forgets them on a restart like the rest.
  const peers = { modalities: await destinations.all(), allowedSenders: config.allowedSenders };
  await ensureDicomPeers(orthanc, peers, (line) => context.log(line));
}

app.timer('dicomPeers', { schedule: '0 * * * * *', handler: dicomPeers });
