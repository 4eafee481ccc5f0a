/**
 * Loaded into every test process by `npm test` (`node --import`): services that unit specs build by
 * hand log through Nest's static Logger, whose default console output (ANSI-coloured WARN lines)
 * would land between the test results. Silent by default; BULWARK_TEST_LOGS=1 shows them as JSON.
 * Gateways started by e2e specs are separate processes and keep their own JSON logs.
 */
import { ConsoleLogger, Logger } from '@nestjs/common';

Logger.overrideLogger(process.env.BULWARK_TEST_LOGS ? new ConsoleLogger({ json: true, colors: false }) : false);
