// Knowledge: built in the next commit.

import { emptyState } from "../dom.js";

export default {
  title: "Knowledge",
  render() {
    return emptyState("Knowledge", "This page is being built.");
  },
};
