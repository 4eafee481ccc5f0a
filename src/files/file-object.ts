/** OpenAI's file object, as the Files API answers it. */
export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: FilePurpose;
  status: 'processed';
  expires_at: number | null;
  status_details: null;
}

/** `batch`: uploaded as a batch's input; `batch_output`: a batch's output or error file. */
export type FilePurpose = 'batch' | 'batch_output';

/** A stored file's description; the lines themselves live apart (see FileStore). */
export interface StoredFile {
  id: string;
  /** Non-secret id of the client key that uploaded it (or whose batch wrote it). */
  owner: string;
  bytes: number;
  lines: number;
  createdAt: number;
  filename: string;
  purpose: FilePurpose;
}

/** The file object of a stored file. */
export function fileObject(file: StoredFile): FileObject {
  return {
    id: file.id,
    object: 'file',
    bytes: file.bytes,
    created_at: Math.floor(file.createdAt / 1000),
    filename: file.filename,
    purpose: file.purpose,
    status: 'processed',
    expires_at: null,
    status_details: null,
  };
}

/**
 * Splits a file into its lines, each with its own line break, so that the lines put back together are
 * the file byte for byte.
 */
export function splitLines(data: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (;;) {
    const end = data.indexOf(0x0a, start);
    if (end < 0) break;
    lines.push(data.subarray(start, end + 1));
    start = end + 1;
  }
  if (start < data.length) lines.push(data.subarray(start));
  return lines;
}
