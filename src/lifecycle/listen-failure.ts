/**
 * One line that tells an operator why Bulwark could not listen and which setting to change, naming
 * PORT and HOST with their values (never a stack trace).
 */
export function listenFailureMessage(host: string, port: number, error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `PORT=${port} on HOST=${host}`;
  switch (code) {
    case 'EADDRINUSE':
      return `cannot listen: ${where} is already in use by another process; stop that process or set PORT to a free port`;
    case 'EACCES':
      return `cannot listen: ${where} needs privileges this process does not have; set PORT to 1024 or above`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen: HOST=${host} is not an address of this machine (PORT=${port}); set HOST to one of its addresses, or 0.0.0.0 for all`;
    default: {
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      return `cannot listen on ${where}: ${reason}`;
    }
  }
}
