import { Injectable, PipeTransform } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import { InvalidRequestError } from '../common/errors';
import { FAST_CHECKS, type FastCheck } from './dto/fast-checks';

type Constructor = new () => object;

/** Constraints that say what a field is; reported before its bounds so that `model: 5` reads "must be a string". */
const TYPE_CONSTRAINTS = ['isDefined', 'isString', 'isBoolean', 'isInt', 'isNumber', 'isArray', 'isObject'];

function mainConstraint(constraints: Record<string, string> | undefined): string | undefined {
  if (!constraints) return undefined;
  const type = TYPE_CONSTRAINTS.find((name) => name in constraints);
  return type ? constraints[type] : Object.values(constraints)[0];
}

function firstProblem(errors: ValidationError[], prefix = ''): { param: string; message: string } | undefined {
  for (const error of errors) {
    const param = prefix ? `${prefix}.${error.property}` : error.property;
    const constraint = mainConstraint(error.constraints);
    if (constraint) return { param, message: constraint.replace(error.property, param) };
    const nested = firstProblem(error.children ?? [], param);
    if (nested) return nested;
  }
  return undefined;
}

/**
 * Validates an OpenAI request body against its DTO and returns the body itself, untouched, so that
 * fields the gateway does not know still reach the upstream. A body that the DTO's hand-written check
 * passes (see fast-checks.ts) skips class-validator; any other is judged, and its error worded, by it.
 */
@Injectable()
export class OpenAIBodyPipe implements PipeTransform<unknown, Record<string, unknown>> {
  private readonly fastCheck?: FastCheck;

  constructor(private readonly dto: Constructor) {
    this.fastCheck = FAST_CHECKS.get(dto);
  }

  transform(body: unknown): Record<string, unknown> {
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new InvalidRequestError('invalid_body', 'The body must be a JSON object');
    }
    if (this.fastCheck?.(body as Record<string, unknown>)) return body as Record<string, unknown>;
    const problem = firstProblem(validateSync(plainToInstance(this.dto, body), { forbidUnknownValues: false }));
    if (problem) throw new InvalidRequestError('invalid_body', problem.message, problem.param);
    return body as Record<string, unknown>;
  }
}
