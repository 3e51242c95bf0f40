// ants-coord/core/client for node: RelayClient bound to the core build (./node.mjs), no documents.
import * as ants from "./node.mjs";
import { makeRelayClient } from "../client.mjs";
import { makeRelayGroup } from "../relay-group.mjs";

export { makeRelayClient, makeRelayGroup };
export const RelayClient = makeRelayClient(ants);
export const RelayGroup = makeRelayGroup(ants, RelayClient);
