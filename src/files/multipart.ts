import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InvalidRequestError, PayloadTooLargeError } from '../common/errors';

/** One part of a multipart/form-data body. */
export interface FormPart {
  name: string;
  /** Set for a file part. */
  filename?: string;
  data: Buffer;
}

/** The raw body of a multipart/form-data request, kept as bytes until the route that takes uploads parses it. */
export interface MultipartBody {
  contentType: string;
  raw: Buffer;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
/** Most parts and most bytes of part headers accepted: an upload is a file and a few fields. */
const MAX_PARTS = 16;
const MAX_HEADER_BYTES = 8192;

/** The boundary named by a `multipart/form-data; boundary=…` content type. */
function boundaryOf(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!/^multipart\/form-data\s*;/i.test(contentType) || !boundary) {
    throw new InvalidRequestError('invalid_body', 'Send the upload as multipart/form-data with a boundary', 'file');
  }
  return boundary;
}

/** `name="…"` and `filename="…"` of a Content-Disposition header (quoted or bare). */
function dispositionField(headers: string, field: string): string | undefined {
  const line = headers.split('\r\n').find((l) => /^content-disposition\s*:/i.test(l));
  if (!line) return undefined;
  const match = new RegExp(`;\\s*${field}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i').exec(line);
  const value = match?.[1] ?? match?.[2];
  return value?.replace(/\\(.)/g, '$1');
}

/**
 * Parses a whole multipart/form-data body (RFC 7578) into its parts. The body is already bounded by
 * the parser's byte limit; the number of parts and the size of their headers are bounded here.
 */
export function parseMultipart(body: MultipartBody): FormPart[] {
  const delimiter = Buffer.from(`--${boundaryOf(body.contentType)}`);
  const raw = body.raw;
  let at = raw.indexOf(delimiter);
  if (at < 0) throw new InvalidRequestError('invalid_body', 'The multipart body holds no part', 'file');
  const parts: FormPart[] = [];
  for (;;) {
    at += delimiter.length;
    // `--` right after a delimiter closes the body.
    if (raw[at] === 0x2d && raw[at + 1] === 0x2d) return parts;
    if (!raw.subarray(at, at + 2).equals(CRLF)) throw new InvalidRequestError('invalid_body', 'Malformed multipart body: a delimiter is not followed by a line break', 'file');
    const headerStart = at + 2;
    const headerEnd = raw.indexOf(HEADER_END, headerStart);
    if (headerEnd < 0 || headerEnd - headerStart > MAX_HEADER_BYTES) throw new InvalidRequestError('invalid_body', 'Malformed multipart body: part headers missing or too long', 'file');
    const next = raw.indexOf(Buffer.concat([CRLF, delimiter]), headerEnd + 4);
    if (next < 0) throw new InvalidRequestError('invalid_body', 'Malformed multipart body: it is not closed by its boundary', 'file');
    const headers = raw.subarray(headerStart, headerEnd).toString('utf8');
    const name = dispositionField(headers, 'name');
    if (name === undefined) throw new InvalidRequestError('invalid_body', 'Malformed multipart body: a part has no Content-Disposition name', 'file');
    parts.push({ name, filename: dispositionField(headers, 'filename'), data: raw.subarray(headerEnd + 4, next) });
    if (parts.length > MAX_PARTS) throw new InvalidRequestError('invalid_body', `A multipart upload may hold at most ${MAX_PARTS} parts`, 'file');
    at = next + 2;
  }
}

/**
 * Accepts multipart/form-data bodies up to `maxFileBytes` plus room for the form's other fields, kept
 * raw for the upload route (JSON routes keep their own, smaller MAX_BODY_BYTES).
 */
export function registerMultipartParser(fastify: FastifyInstance, maxFileBytes: number): void {
  fastify.addContentTypeParser('multipart/form-data', { parseAs: 'buffer', bodyLimit: maxFileBytes + 65_536 }, (request: FastifyRequest, raw: Buffer, done) => {
    done(null, { contentType: String(request.headers['content-type']), raw } satisfies MultipartBody);
  });
}

/** The file part of an upload, refused past `maxBytes`. */
export function filePart(parts: FormPart[], maxBytes: number): FormPart & { filename: string } {
  const file = parts.find((p) => p.name === 'file');
  if (!file) throw new InvalidRequestError('invalid_body', 'The upload has no `file` part', 'file');
  if (file.data.length > maxBytes) throw new PayloadTooLargeError(`The file is ${file.data.length} bytes, larger than the limit of ${maxBytes} bytes (FILES_MAX_BYTES)`, 'file');
  return { ...file, filename: file.filename ?? 'upload.jsonl' };
}

/** A text field of the form, if present. */
export function textField(parts: FormPart[], name: string): string | undefined {
  return parts.find((p) => p.name === name && p.filename === undefined)?.data.toString('utf8');
}
