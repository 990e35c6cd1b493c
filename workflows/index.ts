export { doctor } from './doctor.js';
