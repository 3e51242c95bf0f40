// ants-coord/client for node: RelayClient bound to ./node.mjs.
import * as ants from "./node.mjs";
import { makeRelayClient } from "./client.mjs";

export { makeRelayClient };
export const RelayClient = makeRelayClient(ants);
