/**
 * The link from an arriving study back to its booking: a study whose StudyInstanceUID (the one the
 * worklist entry gave the scanner) or AccessionNumber matches a booking marks that booking arrived
 * and collects the study's jobs on it, so the operator follows booking → study → jobs.
 */
import type { EvaluatedStudy } from '../pipeline/evaluate';
import type { BookingRecord, BookingStore } from './store';

export async function linkArrival(
  store: Pick<BookingStore, 'findByStudy' | 'update'>,
  study: EvaluatedStudy,
  jobIds: string[],
  now = new Date(),
): Promise<BookingRecord | undefined> {
  if (!study.studyInstanceUid && !study.accessionNumber) return undefined;
  const found = await store.findByStudy(study);
  if (!found) return undefined;
  return store.update(found.key, (r) => {
    // A cancelled booking that was scanned after all is arrived: the study is what counts.
    if (r.status !== 'arrived') {
      r.status = 'arrived';
      r.arrivedAt = now.toISOString();
    }
    r.orthancStudyId = study.orthancStudyId;
    r.jobIds = [...new Set([...r.jobIds, ...jobIds])];
    r.updatedAt = now.toISOString();
  });
}
