import { ChatCompletionRequestDto, CompletionRequestDto, EmbeddingRequestDto, ResponsesRequestDto } from './openai-requests.dto';

/**
 * Hand-written checks of the request DTOs for the common case, a body that is valid: each says `true`
 * only when class-validator would find no problem in the body, so the pipe may skip class-validator
 * and class-transformer (several µs and a copy of the body per request). On `false` the pipe runs
 * them as before, so every 400 keeps its exact message and `param`. A check may refuse more than its
 * DTO (that only costs time), never less.
 */
export type FastCheck = (body: Record<string, unknown>) => boolean;

/** Variation selectors: class-validator's length does not count them (nor the second half of a surrogate pair). */
const UNCOUNTED = /[\uFE0E\uFE0F]/;

const absent = (value: unknown) => value === undefined || value === null;

/** `@IsString() @MinLength(1) @MaxLength(max)`. Without variation selectors, the counted length is at least half of `length`, so never 0. */
const text = (value: unknown, max: number) => typeof value === 'string' && value.length >= 1 && value.length <= max && !UNCOUNTED.test(value);

/** `@IsOptional() @IsBoolean()`. */
const optionalBoolean = (value: unknown) => absent(value) || typeof value === 'boolean';

/** `@IsOptional() @IsInt() @Min(min) @Max(max)`. */
const optionalInt = (value: unknown, min: number, max: number) => absent(value) || (Number.isInteger(value) && (value as number) >= min && (value as number) <= max);

/** `@IsOptional() @IsNumber() @Min(min) @Max(max)`. */
const optionalNumber = (value: unknown, min: number, max: number) =>
  absent(value) || (typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max);

/** `@IsObject()`: an object that is not an array (null is not an object). */
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The fields of ModelRequestDto, shared by chat and legacy completions. */
function modelRequest(body: Record<string, unknown>): boolean {
  return (
    text(body.model, 256) &&
    optionalBoolean(body.stream) &&
    optionalInt(body.max_tokens, 1, 10_000_000) &&
    optionalNumber(body.temperature, 0, 2) &&
    optionalNumber(body.top_p, 0, 1) &&
    optionalInt(body.n, 1, 128) &&
    (absent(body.stream_options) || isObject(body.stream_options))
  );
}

/** `messages`: 1 to 100,000 objects, each with a `role` of 1 to 64 characters. */
function chatMessages(messages: unknown): boolean {
  if (!Array.isArray(messages) || messages.length < 1 || messages.length > 100_000) return false;
  for (const message of messages) if (!isObject(message) || !text(message.role, 64)) return false;
  return true;
}

export const FAST_CHECKS: ReadonlyMap<new () => object, FastCheck> = new Map<new () => object, FastCheck>([
  [ChatCompletionRequestDto, (body) => modelRequest(body) && chatMessages(body.messages) && optionalInt(body.max_completion_tokens, 1, 10_000_000)],
  [CompletionRequestDto, (body) => modelRequest(body) && !absent(body.prompt)],
  [EmbeddingRequestDto, (body) => text(body.model, 256) && !absent(body.input)],
  [
    ResponsesRequestDto,
    (body) =>
      text(body.model, 256) &&
      (absent(body.input) || typeof body.input === 'string' || Array.isArray(body.input)) &&
      (absent(body.instructions) || typeof body.instructions === 'string') &&
      optionalBoolean(body.stream) &&
      optionalBoolean(body.background) &&
      optionalInt(body.max_output_tokens, 1, 10_000_000) &&
      optionalNumber(body.temperature, 0, 2) &&
      optionalNumber(body.top_p, 0, 1),
  ],
]);
