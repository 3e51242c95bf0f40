// ants-coord/client for web: RelayClient bound to ./ants_coord.js.
import * as ants from "./ants_coord.js";
import { makeRelayClient } from "./client.mjs";
import { makeRelayGroup } from "./relay-group.mjs";

export { makeRelayClient, makeRelayGroup };
export const RelayClient = makeRelayClient(ants);
export const RelayGroup = makeRelayGroup(ants, RelayClient);
