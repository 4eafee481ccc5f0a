import {
  ArrayMaxSize,
  ArrayMinSize,
  buildMessage,
  IsArray,
  IsBoolean,
  IsDefined,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateBy,
  ValidateNested,
  type ValidationOptions,
} from 'class-validator';
import { Type } from 'class-transformer';

/**
 * The fields the gateway reads or that upstreams would choke on with the wrong type. Unknown fields are
 * not declared here and pass through untouched (vLLM accepts many extras).
 */
class ModelRequestDto {
  @IsString() @MinLength(1) @MaxLength(256)
  model!: string;

  @IsOptional() @IsBoolean()
  stream?: boolean;

  @IsOptional() @IsInt() @Min(1) @Max(10_000_000)
  max_tokens?: number;

  @IsOptional() @IsNumber() @Min(0) @Max(2)
  temperature?: number;

  @IsOptional() @IsNumber() @Min(0) @Max(1)
  top_p?: number;

  @IsOptional() @IsInt() @Min(1) @Max(128)
  n?: number;

  @IsOptional() @IsObject()
  stream_options?: Record<string, unknown>;
}

class ChatMessageDto {
  @IsString() @MinLength(1) @MaxLength(64)
  role!: string;
}

export class ChatCompletionRequestDto extends ModelRequestDto {
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(100_000) @IsObject({ each: true })
  @ValidateNested({ each: true }) @Type(() => ChatMessageDto)
  messages!: ChatMessageDto[];

  @IsOptional() @IsInt() @Min(1) @Max(10_000_000)
  max_completion_tokens?: number;
}

export class CompletionRequestDto extends ModelRequestDto {
  @IsDefined()
  prompt!: string | string[] | number[] | number[][];
}

export class EmbeddingRequestDto {
  @IsString() @MinLength(1) @MaxLength(256)
  model!: string;

  @IsDefined()
  input!: string | string[] | number[] | number[][];
}

/** `input` of the Responses API: a string, or an array of input items. */
function IsTextOrItems(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isTextOrItems',
      validator: {
        validate: (value: unknown) => typeof value === 'string' || Array.isArray(value),
        defaultMessage: buildMessage((prefix) => `${prefix}$property must be a string or an array of input items`, options),
      },
    },
    options,
  );
}

/** `POST /v1/responses` (OpenAI's Responses API). Unknown fields (tools, text, reasoning, …) pass through. */
export class ResponsesRequestDto {
  @IsString() @MinLength(1) @MaxLength(256)
  model!: string;

  @IsOptional() @IsTextOrItems()
  input?: string | unknown[];

  @IsOptional() @IsString()
  instructions?: string;

  @IsOptional() @IsBoolean()
  stream?: boolean;

  @IsOptional() @IsInt() @Min(1) @Max(10_000_000)
  max_output_tokens?: number;

  /** `true`: answered at once with the response object, run on the durable queue (a background response). */
  @IsOptional() @IsBoolean()
  background?: boolean;

  @IsOptional() @IsNumber() @Min(0) @Max(2)
  temperature?: number;

  @IsOptional() @IsNumber() @Min(0) @Max(1)
  top_p?: number;
}
