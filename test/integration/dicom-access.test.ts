/**
 * Issue 17, DICOM access: real Orthanc (the project's deploy/orthanc config), real dcmtk peers, and the
 * peers registered by the app's own code from an environment parsed by loadConfig.
 *
 * "Another loopback address": a peer registered with Host 127.0.0.2 while every dcmtk tool connects
 * from 127.0.0.1, so a caller using that peer's AET is a spoof as Orthanc sees it. Each refusal has a
 * control that shows the same query succeeding when it is permitted, so the refusals can fail.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, type Config } from '../../shared/config';
import { applyDestinations, ensureDicomPeers } from '../../shared/orthanc/destinations';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { echoscu, findscu, getscu, storescu, type DicomPeer } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { orthancIdOfStudy, startOrthanc, type OrthancServer } from '../support/orthanc';
import { makeTempDir } from '../support/process';

const STUDY_KEYS = (study: GeneratedStudy) => ({
  QueryRetrieveLevel: 'STUDY',
  StudyInstanceUID: study.studyInstanceUID,
  PatientName: '',
  PatientID: '',
  PatientBirthDate: '',
});

function peer(orthanc: OrthancServer, callingAet: string): DicomPeer {
  return { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet, callingAet };
}

/** C-FIND as `aet`: the matches, or the refusal as an error (findscu reports it on stderr). */
async function findAs(
  orthanc: OrthancServer,
  aet: string,
  study: GeneratedStudy,
): Promise<Record<string, string>[] | Error> {
  return findscu(peer(orthanc, aet), STUDY_KEYS(study)).catch((error: Error) => error);
}

/** C-GET as `aet`: the files received in a fresh folder, and the refusal if there was one. */
async function getAs(
  orthanc: OrthancServer,
  aet: string,
  study: GeneratedStudy,
): Promise<{ files: string[]; error?: Error }> {
  const dir = makeTempDir(`getscu-${aet}-`);
  const error = await getscu(
    peer(orthanc, aet),
    { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: study.studyInstanceUID },
    dir,
  ).then(
    () => undefined,
    (e: Error) => e,
  );
  return { files: readdirSync(dir).map((f) => path.join(dir, f)), error };
}

/** Orthanc refuses a forbidden C-FIND or C-GET by aborting the association (Orthanc 1.10.1). */
const ABORTED = /Peer aborted Association/;

function assertRefused(
  find: Record<string, string>[] | Error,
  get: { files: string[]; error?: Error },
  who: string,
): void {
  assert.ok(find instanceof Error, `C-FIND as ${who} answered ${JSON.stringify(find)}`);
  assert.match(find.message, /Find Failed/);
  assert.match(find.message, ABORTED);
  assert.doesNotMatch(find.message, /Zugang|ACCESS-001|19700101/, 'the refusal carries no patient data');
  assert.match(String(get.error), ABORTED, `C-GET as ${who} was refused`);
  assert.deepEqual(get.files, [], `no instance reached ${who}`);
}

async function configure(
  orthanc: OrthancServer,
  env: NodeJS.ProcessEnv,
): Promise<{ config: Config; client: OrthancClient; lines: string[] }> {
  const config = loadConfig({ ...orthanc.env, ...env });
  const client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
  const lines: string[] = [];
  await applyDestinations(client, config.modalities, (line) => lines.push(line), config.allowedSenders);
  return { config, client, lines };
}

describe(
  'DICOM access: destinations may echo and store, query/retrieve only where granted and from their own host',
  { timeout: 120_000 },
  () => {
    let orthanc: OrthancServer;
    let client: OrthancClient;
    let study: GeneratedStudy;

    before(async () => {
      orthanc = await startOrthanc();
      study = await generateStudy({
        patientID: 'ACCESS-001',
        patientName: 'Zugang^Geheim',
        patientBirthDate: '19700101',
        series: [{ seriesNumber: 1, modality: 'CT', instances: 3 }],
      });
      // Without ORTHANC_ALLOWED_SENDERS, storing stays open to any sender (today's behaviour).
      await storescu(study.files, peer(orthanc, 'ANYSCANNER'));
      ({ client } = await configure(orthanc, {
        // A destination at another address, with the default (echo and store) permissions.
        MODALITY_PACS: 'PACSAET|127.0.0.2|11112',
        // A destination on the callers' own address, also with the default permissions.
        MODALITY_NEAR: 'NEARAET|127.0.0.1|11113',
        // Granted find and get: QR on the callers' address (the control), FARQR at another address.
        MODALITY_QR: 'QRAET|127.0.0.1|11114',
        MODALITY_FARQR: 'FARQRAET|127.0.0.2|11115',
        ORTHANC_DESTINATION_PERMISSIONS: 'QR:find+get,FARQR:find+get',
      }));
    });
    after(async () => orthanc?.stop());

    it('registers every destination with explicit permissions: echo and store, find/get only where granted', async () => {
      const modalities = await client.modalities();
      const permissions = (name: string) => {
        const m = modalities[name] as Record<string, unknown>;
        return {
          Host: m.Host,
          AllowEcho: m.AllowEcho,
          AllowStore: m.AllowStore,
          AllowFind: m.AllowFind,
          AllowGet: m.AllowGet,
          AllowMove: m.AllowMove,
          AllowFindWorklist: m.AllowFindWorklist,
        };
      };
      assert.deepEqual(permissions('PACS'), {
        Host: '127.0.0.2',
        AllowEcho: true,
        AllowStore: true,
        AllowFind: false,
        AllowGet: false,
        AllowMove: false,
        AllowFindWorklist: false,
      });
      assert.deepEqual(permissions('QR'), {
        Host: '127.0.0.1',
        AllowEcho: true,
        AllowStore: true,
        AllowFind: true,
        AllowGet: true,
        AllowMove: false,
        AllowFindWorklist: false,
      });
    });

    it('control: a granted destination calling from its own address finds the study and gets every instance', async () => {
      const matches = await findAs(orthanc, 'QRAET', study);
      assert.ok(Array.isArray(matches), `C-FIND as QRAET was refused: ${JSON.stringify(matches)}`);
      assert.equal(matches.length, 1);
      assert.deepEqual(
        [matches[0].PatientName, matches[0].PatientID, matches[0].PatientBirthDate],
        ['Zugang^Geheim', 'ACCESS-001', '19700101'],
      );
      const got = await getAs(orthanc, 'QRAET', study);
      assert.equal(got.error, undefined, String(got.error));
      assert.equal(got.files.length, study.files.length, 'C-GET as QRAET delivered every instance');
    });

    it("a spoofed destination AET from another address gets no C-FIND match and no C-GET (the issue's attack)", async () => {
      assertRefused(
        await findAs(orthanc, 'PACSAET', study),
        await getAs(orthanc, 'PACSAET', study),
        'PACSAET from 127.0.0.1',
      );
      assert.match(
        orthanc.logs(),
        /DICOM authorization rejected for AET PACSAET on IP 127\.0\.0\.1: Its IP address should be 127\.0\.0\.2/,
      );
    });

    it('the host check holds even for a destination granted find and get (FARQR lives at 127.0.0.2)', async () => {
      assertRefused(
        await findAs(orthanc, 'FARQRAET', study),
        await getAs(orthanc, 'FARQRAET', study),
        'FARQRAET from 127.0.0.1',
      );
      assert.match(
        orthanc.logs(),
        /DICOM authorization rejected for AET FARQRAET on IP 127\.0\.0\.1: Its IP address should be 127\.0\.0\.2/,
      );
    });

    it('a destination without a grant may not query or retrieve even from its own address', async () => {
      assertRefused(await findAs(orthanc, 'NEARAET', study), await getAs(orthanc, 'NEARAET', study), 'NEARAET');
      assert.match(
        orthanc.logs(),
        /AET NEARAET on IP 127\.0\.0\.1: The DICOM command Find is not allowed for this modality/,
      );
    });

    it('an unknown AET gets no match either', async () => {
      assertRefused(await findAs(orthanc, 'STRANGER', study), await getAs(orthanc, 'STRANGER', study), 'STRANGER');
      assert.match(orthanc.logs(), /AET STRANGER on IP 127\.0\.0\.1: This AET is not listed/);
    });
  },
);

describe(
  'DICOM access: with ORTHANC_ALLOWED_SENDERS set, only the listed senders (and destinations) may call',
  { timeout: 120_000 },
  () => {
    const SENDERS = 'SCANNER1|SCANNERAET|127.0.0.1,FAR|FARAET|127.0.0.2';
    let orthanc: OrthancServer;
    let config: Config;
    let client: OrthancClient;

    before(async () => {
      orthanc = await startOrthanc({ allowedSenders: SENDERS });
    });
    after(async () => orthanc?.stop());

    async function stores(aet: string, patientID: string): Promise<{ stored: boolean; error?: Error }> {
      const study = await generateStudy({ patientID, series: [{ seriesNumber: 1, modality: 'MR', instances: 2 }] });
      const error = await storescu(study.files, peer(orthanc, aet)).then(
        () => undefined,
        (e: Error) => e,
      );
      return { stored: (await orthancIdOfStudy(orthanc, study.studyInstanceUID)) !== undefined, error };
    }

    it('refuses even a listed sender until the app has registered it (the door is closed while the app is away)', async () => {
      const early = await stores('SCANNERAET', 'EARLY-1');
      assert.equal(early.stored, false);
      assert.match(String(early.error), /Association Rejected|Calling AE Title Not Recognized/);
    });

    it('a listed sender stores once registered, and answers nothing to a C-FIND', async () => {
      ({ config, client } = await configure(orthanc, {
        ORTHANC_ALLOWED_SENDERS: SENDERS,
        MODALITY_SINK: 'SINKAET|127.0.0.1|11116',
      }));
      assert.deepEqual(Object.keys(config.allowedSenders ?? {}), ['SCANNER1', 'FAR']);
      const result = await stores('SCANNERAET', 'ALLOWED-1');
      assert.equal(result.error, undefined, String(result.error));
      assert.equal(result.stored, true);
      assert.ok(await echoscu(peer(orthanc, 'SCANNERAET')), 'a listed sender may C-ECHO');
      const found = await findscu(peer(orthanc, 'SCANNERAET'), {
        QueryRetrieveLevel: 'STUDY',
        PatientID: 'ALLOWED-1',
        PatientName: '',
      }).catch((e: Error) => e);
      assert.ok(found instanceof Error, `C-FIND as a sender answered ${JSON.stringify(found)}`);
      assert.match(found.message, ABORTED);
    });

    it('refuses a sender that is not on the list, and a listed AET calling from another address', async () => {
      const unlisted = await stores('UNLISTED', 'UNLISTED-1');
      assert.equal(unlisted.stored, false);
      assert.match(String(unlisted.error), /Association Rejected|Calling AE Title Not Recognized/);
      assert.equal(await echoscu(peer(orthanc, 'UNLISTED')), false, 'no C-ECHO for an unlisted caller');
      const spoofed = await stores('FARAET', 'SPOOFED-1');
      assert.equal(spoofed.stored, false, 'FARAET is listed for 127.0.0.2 only');
      assert.match(orthanc.logs(), /AET "FARAET" given its hostname \(127\.0\.0\.1\) does not match/);
    });

    it('a destination may still store back (round trips) from its own address', async () => {
      const result = await stores('SINKAET', 'ROUNDTRIP-1');
      assert.equal(result.error, undefined, String(result.error));
      assert.equal(result.stored, true);
    });

    it('after Orthanc restarts on its own, the app puts the peers back and the listed sender stores again', async () => {
      await orthanc.stop();
      await orthanc.start();
      const lost = await stores('SCANNERAET', 'RESTART-1');
      assert.equal(lost.stored, false, 'Orthanc forgot the sender: refused, not admitted');
      const lines: string[] = [];
      const put = await ensureDicomPeers(client, config, (line) => lines.push(line));
      assert.deepEqual(put.sort(), ['FAR', 'SCANNER1', 'SINK']);
      assert.deepEqual(await ensureDicomPeers(client, config, () => {}), [], 'nothing to do once they match');
      const again = await stores('SCANNERAET', 'RESTART-2');
      assert.equal(again.error, undefined, String(again.error));
      assert.equal(again.stored, true);
    });
  },
);
