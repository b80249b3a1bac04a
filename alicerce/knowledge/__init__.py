"""Knowledge collections: extract, chunk, embed, index and search documents."""
