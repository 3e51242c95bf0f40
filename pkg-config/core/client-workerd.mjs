// ants-coord/core/client for workerd: RelayClient bound to the core build (./workerd.js), no documents.
import * as ants from "./workerd.js";
import { makeRelayClient } from "../client.mjs";
import { makeRelayGroup } from "../relay-group.mjs";

export { makeRelayClient, makeRelayGroup };
export const RelayClient = makeRelayClient(ants);
export const RelayGroup = makeRelayGroup(ants, RelayClient);
