// Playground: built in the next commit.

import { emptyState } from "../dom.js";

export default {
  title: "Playground",
  render() {
    return emptyState("Playground", "This page is being built.");
  },
};
