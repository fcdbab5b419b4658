import { heapGrowingFlag } from '../../src/runtime/heap';

describe('HEAP_GROWING_PERCENT: the V8 flag the entry point sets', () => {
  test('the setting becomes --heap-growing-percent', () => {
    expect(heapGrowingFlag(50, [], undefined)).toBe('--heap-growing-percent=50');
    expect(heapGrowingFlag(200, ['--enable-source-maps'], '--max-old-space-size=512')).toBe('--heap-growing-percent=200');
  });

  test('0 leaves V8 its own heuristics', () => {
    expect(heapGrowingFlag(0, [], undefined)).toBeUndefined();
  });

  test.each([
    [['--heap-growing-percent=30'], undefined],
    [['--heap_growing_percent=30'], undefined],
    [[], '--max-old-space-size=512 --heap-growing-percent=30'],
    [[], '--heap_growing_percent 30'],
  ])('a flag given to node itself wins (execArgv %j, NODE_OPTIONS %j)', (execArgv, nodeOptions) => {
    expect(heapGrowingFlag(50, execArgv, nodeOptions)).toBeUndefined();
  });
});
