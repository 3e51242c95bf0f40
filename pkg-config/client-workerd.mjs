// ants-coord/client for workerd: RelayClient bound to ./workerd.js.
import * as ants from "./workerd.js";
import { makeRelayClient } from "./client.mjs";

export { makeRelayClient };
export const RelayClient = makeRelayClient(ants);
