import { describeAccountServiceE2E } from "./account-service-suite.js";

describeAccountServiceE2E("sqlite", async () => ({ env: { EVENTBANK_STORE: "sqlite" } }));
