// Keys: built in the next commit.

import { emptyState } from "../dom.js";

export default {
  title: "Keys",
  render() {
    return emptyState("Keys", "This page is being built.");
  },
};
