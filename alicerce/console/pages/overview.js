// Overview: built in the next commit.

import { emptyState } from "../dom.js";

export default {
  title: "Overview",
  render() {
    return emptyState("Overview", "This page is being built.");
  },
};
