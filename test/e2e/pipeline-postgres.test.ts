// The same scenarios with Orthanc's index in a real PostgreSQL, configured as compose configures it.
import { definePipelineSuite } from './pipeline.scenarios';

definePipelineSuite({ postgres: true });
