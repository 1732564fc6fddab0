// 405 for a known path with the wrong method (with Allow), and an answer to OPTIONS.
import type { NextFunction, Request, Response } from 'express';
import { HttpProblem } from '../problem.js';

export function methodNotAllowed(methods: string[]) {
  const allow = [...methods, ...(methods.includes('GET') ? ['HEAD'] : []), 'OPTIONS'].join(', ');
  return (req: Request, res: Response, next: NextFunction): void => {
    res.setHeader('Allow', allow);
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    next(
      new HttpProblem('methodNotAllowed', `${req.method} is not supported on ${req.path}; allowed: ${allow}`),
    );
  };
}
