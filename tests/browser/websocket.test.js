import { defineTransportSuite } from './transport-suite.js';

defineTransportSuite('websocket');
