/**
 * A segment trie for path patterns such as `/v2/projects/{project_id}/apps/{name}`. A literal segment always
 * wins over a parameter at the same depth; when a literal branch fails deeper down, matching backtracks to the
 * parameter branch. Matching allocates only the array of parameter values.
 */
interface TrieNode<T> {
  literals: Map<string, TrieNode<T>>;
  param: TrieNode<T> | undefined;
  value: T | undefined;
}

function newNode<T>(): TrieNode<T> {
  return { literals: new Map(), param: undefined, value: undefined };
}

export interface PatternMatch<T> {
  value: T;
  /** Values of the pattern's parameters, in the order they appear in the pattern. */
  paramValues: string[];
}

export function isParamSegment(segment: string): boolean {
  return segment.length > 2 && segment.startsWith('{') && segment.endsWith('}');
}

export function patternSegments(pattern: string): string[] {
  return pattern.split('/').slice(1);
}

export class PathMatcher<T> {
  private readonly root: TrieNode<T> = newNode();

  /** Adds a pattern; returns false (and changes nothing) when the same pattern is already present. */
  insert(segments: readonly string[], value: T): boolean {
    let node = this.root;
    for (const segment of segments) {
      if (isParamSegment(segment)) {
        node.param ??= newNode();
        node = node.param;
      } else {
        let next = node.literals.get(segment);
        if (!next) {
          next = newNode();
          node.literals.set(segment, next);
        }
        node = next;
      }
    }
    if (node.value !== undefined) return false;
    node.value = value;
    return true;
  }

  match(segments: readonly string[]): PatternMatch<T> | undefined {
    const paramValues: string[] = [];
    const value = this.walk(this.root, segments, 0, paramValues);
    return value === undefined ? undefined : { value, paramValues };
  }

  private walk(node: TrieNode<T>, segments: readonly string[], index: number, params: string[]): T | undefined {
    if (index === segments.length) return node.value;
    const segment = segments[index] as string;
    const literal = node.literals.get(segment);
    if (literal) {
      const found = this.walk(literal, segments, index + 1, params);
      if (found !== undefined) return found;
    }
    if (node.param && segment.length > 0) {
      params.push(segment);
      const found = this.walk(node.param, segments, index + 1, params);
      if (found !== undefined) return found;
      params.pop();
    }
    return undefined;
  }
}
