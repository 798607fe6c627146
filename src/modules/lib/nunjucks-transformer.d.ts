// nunjucks' transformer (not exported by its index, no types of its own). Imported, not required at
// run time, so that the CLI bundle (scripts/build.mjs) holds it beside the nunjucks it belongs to:
// it tests nodes with instanceof, so a second copy of nunjucks would not recognise the parser's nodes.
declare module 'nunjucks/src/transformer.js' {
  const transformer: { transform(ast: unknown, asyncFilters: string[], name?: string): unknown };
  export default transformer;
}
