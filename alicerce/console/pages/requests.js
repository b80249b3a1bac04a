// Requests: built in the next commit.

import { emptyState } from "../dom.js";

export default {
  title: "Requests",
  render() {
    return emptyState("Requests", "This page is being built.");
  },
};
