// Gateways: built in the next commit.

import { emptyState } from "../dom.js";

export default {
  title: "Gateways",
  render() {
    return emptyState("Gateways", "This page is being built.");
  },
};
