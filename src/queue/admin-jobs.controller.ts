import { Controller, Get, Query } from '@nestjs/common';
import { InvalidRequestError } from '../common/errors';
import { Kind } from '../common/route-kind.decorator';
import { JobsService } from './jobs.service';

/** The dead-letter list: async jobs that failed for good, with their last error. */
@Controller('admin/jobs')
@Kind('admin')
export class AdminJobsController {
  constructor(private readonly jobs: JobsService) {}

  @Get()
  list(@Query('status') status = 'failed', @Query('limit') limit = '100') {
    if (status !== 'failed') throw new InvalidRequestError('invalid_body', 'Only status=failed (the dead-letter list) is listed', 'status');
    const count = Number(limit);
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new InvalidRequestError('invalid_body', 'limit must be an integer from 1 to 1000', 'limit');
    return this.jobs.deadLetters(count);
  }
}
