import { definePipelineSuite } from './pipeline.scenarios';

definePipelineSuite({ postgres: false });
