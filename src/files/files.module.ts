import { Module } from '@nestjs/common';
import { FileStore } from './file-store';
import { FilesController } from './files.controller';
import { FilesService } from './files.service';

/** OpenAI's Files API over Redis: the store of batch input and output files. */
@Module({
  controllers: [FilesController],
  providers: [FileStore, FilesService],
  exports: [FileStore, FilesService],
})
export class FilesModule {}
