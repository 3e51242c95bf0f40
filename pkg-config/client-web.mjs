// ants-coord/client for web: RelayClient bound to ./ants_coord.js.
import * as ants from "./ants_coord.js";
import { makeRelayClient } from "./client.mjs";

export { makeRelayClient };
export const RelayClient = makeRelayClient(ants);
