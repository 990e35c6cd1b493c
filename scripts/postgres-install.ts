/** `npm run postgres:install`: find (or, as root, install Debian's package) the PostgreSQL server the tests start, and print where it is. */
import { installPostgres } from '../src/store/postgres-server.js';

console.log(installPostgres((line) => console.error(line)));
