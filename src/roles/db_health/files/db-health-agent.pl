#!/usr/bin/perl
# Managed by provision (role db_health): edits here are replaced on the next run.
#
# The database health agent: ONE long-running process per database host (provision-db-health.service).
# It keeps one connection to the local server open (a `mysql` client in batch mode on a pipe, restarted
# when it ends: the server went away, restarted, or did not answer in time), asks it for its state every
# --poll-ms, and answers the web servers' database endpoints (HAProxy's HTTP checks) from the latest state,
# without forking per check:
#   GET /write  200 when this server takes writes: read_only OFF and not replicating (a primary)
#   GET /read   200 when it is a replica fit to read from: both threads running, lag <= --max-lag seconds
# 503 otherwise, and 503 for both whenever the latest state is older than --max-age-ms (fail closed: a hung
# or unreachable server is never reported as fit). It logs when an answer changes, never per check.
#
# perl-base only (essential on Debian): no DBI, no Time::HiRes; time is read from /proc/uptime (monotonic).
# The database login: a client option file (--client-config, from systemd's credential store), never argv.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use IPC::Open3 qw(open3);
use POSIX qw(:sys_wait_h);

my %opt = (listen => '127.0.0.1', port => 9200, 'max-lag' => 30, 'poll-ms' => 250, 'max-age-ms' => 2000, client => 'mysql', 'client-config' => '');
while (@ARGV) {
  my $arg = shift @ARGV;
  my ($name) = $arg =~ /^--([a-z-]+)$/ or die "db-health-agent: unknown argument '$arg'\n";
  exists $opt{$name} && @ARGV or die "db-health-agent: unknown option --$name, or no value\n";
  $opt{$name} = shift @ARGV;
}
for my $n (qw(port max-lag poll-ms max-age-ms)) {
  $opt{$n} =~ /^\d+$/ or die "db-health-agent: --$n wants a whole number, not '$opt{$n}'\n";
}
my $POLL = $opt{'poll-ms'} / 1000;
my $MAX_AGE = $opt{'max-age-ms'} / 1000;
# A client that connects and sends nothing is closed after this; never more than MAX_CHECKS open at once.
my $REQUEST_TIMEOUT = 2;
my $MAX_CHECKS = 64;
# A server that is down: the client is started again at most this often.
my $RECONNECT_EVERY = 1;

$| = 1;
$SIG{PIPE} = 'IGNORE';
sub say_journal { print STDERR "@_\n" }

open my $uptime, '<', '/proc/uptime' or die "db-health-agent: /proc/uptime: $!\n";
sub now {
  sysseek $uptime, 0, 0;
  sysread $uptime, my $s, 64;
  return (split ' ', $s)[0];
}

my $listener = IO::Socket::INET->new(LocalAddr => $opt{listen}, LocalPort => $opt{port}, Proto => 'tcp', Listen => 64, ReuseAddr => 1)
  or die "db-health-agent: cannot listen on $opt{listen}:$opt{port}: $!\n";
$listener->blocking(0);
my $select = IO::Select->new($listener);
say_journal("listening on $opt{listen}:" . $listener->sockport . "; the server's state every $opt{'poll-ms'} ms, stale after $opt{'max-age-ms'} ms, read lag bound $opt{'max-lag'} s");

# The latest complete state read from the server, and when (uptime seconds; undef: never).
my %state = (at => undef, read_only => undef, replica => undef);
my $problem = 'starting';    # why the latest poll failed, when it did

# The client process: its pipes, what it printed so far, and the poll in flight.
my %db = (pid => undef, in => undef, out => undef, buf => '', sent => undef, seq => 0, started => undef);

sub client_start {
  my @args = ('--batch', '--unbuffered', '--connect-timeout=2');
  # An option file must come first; the server's own client settings (its socket) still apply.
  unshift @args, "--defaults-extra-file=$opt{'client-config'}" if $opt{'client-config'} ne '';
  my ($in, $out);
  # stderr (undef) joins stdout: the client's "ERROR ..." lines are read like its answers.
  my $pid = eval { open3($in, $out, undef, $opt{client}, @args) };
  if (!$pid) {
    $problem = "cannot run $opt{client}: " . ($@ || $!);
    return;
  }
  $out->blocking(0);
  $in->autoflush(1);
  @db{qw(pid in out buf sent started)} = ($pid, $in, $out, '', undef, now());
  $select->add($out);
}

sub client_stop {
  my ($why) = @_;
  return unless $db{pid};
  $problem = $why;
  # The connection is gone: what it last said no longer counts (a server going down fails at once).
  %state = (at => undef, read_only => undef, replica => undef);
  $select->remove($db{out});
  kill 'KILL', $db{pid};
  waitpid $db{pid}, 0;
  close $db{in};
  close $db{out};
  @db{qw(pid in out buf sent)} = (undef, undef, undef, '', undef);
}

sub poll_send {
  $db{seq}++;
  # Column names on (batch mode): each result is its header line then its rows, one line a row.
  my $q = "SELECT \@\@read_only AS provision_read_only;\nSHOW SLAVE STATUS;\nSELECT $db{seq} AS provision_poll_end;\n";
  if (!defined syswrite $db{in}, $q) {
    client_stop("the client's input closed: $!");
    return;
  }
  $db{sent} = now();
}

# One poll's output: "provision_read_only", its value, SHOW SLAVE STATUS (header + row, or nothing), the end.
sub poll_parse {
  my @lines = @_;
  # Anything the client printed before this poll's first result (a warning at its start) is not part of it.
  shift @lines while @lines && $lines[0] ne 'provision_read_only';
  return 'no read_only in the answer' unless @lines >= 2 && $lines[0] eq 'provision_read_only' && $lines[1] =~ /^[01]$/;
  my %replica;
  if (@lines >= 4) {
    my @names = split /\t/, $lines[2], -1;
    my @values = split /\t/, $lines[3], -1;
    @replica{@names} = @values;
  }
  %state = (at => now(), read_only => $lines[1], replica => (%replica ? \%replica : undef));
  $problem = '';
  return undef;
}

sub client_read {
  my $n = sysread $db{out}, my $chunk, 65536;
  if (!$n) {
    return if !defined $n && $!{EAGAIN};
    my $last = (grep { /\S/ } split /\n/, $db{buf})[-1] // 'no output';
    client_stop("the client ended ($last)");
    return;
  }
  $db{buf} .= $chunk;
  if ($db{buf} =~ /^ERROR\b(.*)$/m) {
    client_stop("ERROR$1");
    return;
  }
  my $end = "provision_poll_end\n$db{seq}\n";
  my $at = index $db{buf}, $end;
  return if $at < 0;
  my @lines = split /\n/, substr($db{buf}, 0, $at);
  $db{buf} = substr $db{buf}, $at + length $end;
  $db{sent} = undef;
  my $bad = poll_parse(@lines);
  client_stop("unexpected answer: $bad") if $bad;
}

# The answers, from the latest state: [status, text] for each path.
sub answers {
  my $age = defined $state{at} ? now() - $state{at} : undef;
  if (!defined $age || $age > $MAX_AGE) {
    my $why = defined $age ? sprintf('state %.1f s old', $age) : 'no state';
    my $cause = $problem ne '' ? $problem : $db{sent} ? 'the local server has not answered yet' : 'not connected';
    my $down = ['503 Service Unavailable', "$why: $cause"];
    return { '/write' => $down, '/read' => $down };
  }
  my $r = $state{replica};
  my $write = $state{read_only} ne '0' ? ['503 Service Unavailable', 'read-only: not the primary']
    : $r ? ['503 Service Unavailable', 'writable but replicating: not a primary']
    : ['200 OK', 'writable primary'];
  my $read;
  if (!$r) {
    $read = ['503 Service Unavailable', 'not a replica'];
  } else {
    my ($io, $sql, $lag) = map { $r->{$_} // '' } qw(Slave_IO_Running Slave_SQL_Running Seconds_Behind_Master);
    $read = $io ne 'Yes' || $sql ne 'Yes' ? ['503 Service Unavailable', "replication threads IO $io, SQL $sql"]
      : $lag !~ /^\d+$/ ? ['503 Service Unavailable', "lag unknown ($lag)"]
      : $lag > $opt{'max-lag'} ? ['503 Service Unavailable', "lag $lag s above $opt{'max-lag'} s"]
      : ['200 OK', "replica, lag $lag s"];
  }
  return { '/write' => $write, '/read' => $read };
}

# One journal line when an answer's status changes (not per check, not per lag value).
my $logged = '';
sub log_changes {
  my $a = answers();
  my $key = join ' ', map { substr $a->{$_}[0], 0, 3 } qw(/write /read);
  return if $key eq $logged;
  $logged = $key;
  say_journal(join '; ', map { "$_ $a->{$_}[0] ($a->{$_}[1])" } qw(/write /read));
}

my %checks;    # fileno => { sock, buf, since }

sub reply {
  my ($c, $status, $text) = @_;
  my $body = "$text\n";
  syswrite $c->{sock}, "HTTP/1.0 $status\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
  check_close($c);
}

sub check_close {
  my ($c) = @_;
  $select->remove($c->{sock});
  delete $checks{fileno $c->{sock}};
  close $c->{sock};
}

sub check_read {
  my ($c) = @_;
  my $n = sysread $c->{sock}, my $chunk, 4096;
  if (!$n) {
    check_close($c) unless !defined $n && $!{EAGAIN};
    return;
  }
  $c->{buf} .= $chunk;
  # The whole request, to its empty line: closing with unread bytes would reset the connection
  # before the checker reads the answer.
  return check_close($c) if length $c->{buf} > 8192;
  return unless $c->{buf} =~ /\r?\n\r?\n/;
  my ($method, $target) = $c->{buf} =~ /^(\S+) (\S+)/;
  return reply($c, '405 Method Not Allowed', 'GET only') unless ($method // '') eq 'GET';
  my $a = answers();
  return reply($c, '404 Not Found', 'GET /write or /read') unless $a->{$target};
  reply($c, @{ $a->{$target} });
}

my $next_poll = now();
my $next_start = now();
while (1) {
  my $t = now();
  if (!$db{pid} && $t >= $next_start) {
    $next_start = $t + $RECONNECT_EVERY;
    client_start();
  }
  if ($db{pid} && $db{sent} && $t - $db{sent} > $MAX_AGE) {
    client_stop(sprintf 'no answer from the local server within %.1f s', $MAX_AGE);
  }
  if ($db{pid} && !$db{sent} && $t >= $next_poll) {
    poll_send();
    $next_poll = $t + $POLL;
  }
  log_changes();
  for my $c (values %checks) {
    check_close($c) if $t - $c->{since} > $REQUEST_TIMEOUT;
  }
  # Until the next thing to do: a poll, the answer's deadline, or starting the client again.
  my $wait = !$db{pid} ? $next_start - $t : $db{sent} ? $db{sent} + $MAX_AGE - $t : $next_poll - $t;
  $wait = 0.01 if $wait < 0.01;
  $wait = $POLL if $wait > $POLL;
  for my $fh ($select->can_read($wait)) {
    if ($fh == $listener) {
      while (my $sock = $listener->accept) {
        if (keys %checks >= $MAX_CHECKS) { close $sock; next; }
        $sock->blocking(0);
        $checks{fileno $sock} = { sock => $sock, buf => '', since => now() };
        $select->add($sock);
      }
    } elsif ($db{out} && $fh == $db{out}) {
      client_read();
    } elsif (my $c = $checks{fileno $fh}) {
      check_read($c);
    }
  }
}
