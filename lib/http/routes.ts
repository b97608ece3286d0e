import type { ErrorCode } from '../errors';
import { ROUTES, type Route } from './contract';

/** Why a request was not let through: the status, the error body and the headers to answer with. */
export class Refusal {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    readonly message: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** A request matched to its route: the path to forward (the route's own form) and the path parameters. */
export interface Matched {
  route: Route;
  path: string;
}

const escape = (part: string) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The contract's routes, matched as API Gateway matches them (with or without a trailing slash).
 * Locally the front door asks it for every request; deployed, the `$default` route's function asks
 * it about the requests no route took, so both answer 405 with `Allow` and 404 alike. Pure.
 */
export class RouteTable {
  private readonly patterns: { route: Route; regex: RegExp }[];

  /** `hint` ends a 404's message (locally: where the API reference is). */
  constructor(
    routes: readonly Route[] = ROUTES,
    private readonly hint = '',
  ) {
    this.patterns = routes.map((route) => ({
      route,
      regex: new RegExp(`^${route.path.replace(/\/$/, '').split('/').map((part) => (/^\{\w+\}$/.test(part) ? '[^/]+' : escape(part))).join('/')}/?$`),
    }));
  }

  /** The 404 for a method and path the API does not serve. */
  notFound(method: string, path: string): Refusal {
    return new Refusal(404, 'not_found', `No route ${method.slice(0, 20)} ${path.slice(0, 200)}${this.hint}`);
  }

  /** The route for a method and path, or the Refusal: 405 with the methods the path has, 404 for a path the API does not have (never a list of routes). */
  match(method: string, path: string): Matched | Refusal {
    try {
      decodeURIComponent(path);
    } catch {
      return new Refusal(400, 'invalid_path', `The path is not valid percent-encoding: ${JSON.stringify(path.slice(0, 120))}`);
    }
    const candidates = this.patterns.filter((p) => p.regex.test(path));
    if (!candidates.length) return this.notFound(method, path);
    const hit = candidates.find((p) => p.route.method === method.toLowerCase());
    if (!hit) {
      const allowed = [...new Set(candidates.map((p) => p.route.method.toUpperCase()))].sort().join(', ');
      return new Refusal(405, 'method_not_allowed', `${method.slice(0, 20)} is not allowed on ${path.slice(0, 200)}; allowed: ${allowed}`, { allow: allowed });
    }
    // Forward in the route's own form (with or without its trailing slash), as the emulator declares it.
    const own = hit.route.path.endsWith('/') ? (path.endsWith('/') ? path : `${path}/`) : path.replace(/\/$/, '');
    return { route: hit.route, path: own };
  }
}
