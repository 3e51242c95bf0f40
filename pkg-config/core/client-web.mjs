// ants-coord/core/client for web: RelayClient bound to the core build (./ants_coord.js), no documents.
import * as ants from "./ants_coord.js";
import { makeRelayClient } from "../client.mjs";
import { makeRelayGroup } from "../relay-group.mjs";

export { makeRelayClient, makeRelayGroup };
export const RelayClient = makeRelayClient(ants);
export const RelayGroup = makeRelayGroup(ants, RelayClient);
