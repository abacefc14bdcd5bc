function __svctrace_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __svctrace_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __svctrace_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __svctrace_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __svctrace_parse_tokens -S
    set -l unparsed_tokens (__svctrace_tokens -pc)
    switch $unparsed_tokens[1]
    case 'svctrace'
        __svctrace_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'ping'
            __svctrace_parse_subcommand 0 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'json' 'version' 'h/help'
        case 'exec'
            __svctrace_parse_subcommand -r 1 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'json' 'command-timeout=' 'version' 'h/help'
        case 'install'
            __svctrace_parse_subcommand 0 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'log-path=' 'service-cidr=' 'node-port-range=' 'services=' 'max-rate=' 'refresh=' 'json' 'check' 'diff' 'serial=' 'max-fail-percent=' 'for=' 'version' 'h/help'
        case 'remove'
            __svctrace_parse_subcommand 0 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'json' 'log-path=' 'purge-logs' 'legacy' 'version' 'h/help'
        case 'verify'
            __svctrace_parse_subcommand 0 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'log-path=' 'service-cidr=' 'node-port-range=' 'services=' 'max-rate=' 'refresh=' 'store=' 'format=' 'output=' 'canary' 'canary-service=' 'max-clock-offset=' 'min-hours-until-full=' 'version' 'h/help'
        case 'collect'
            __svctrace_parse_subcommand 0 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'store=' 'shard=' 'json' 'log-path=' 'from-file=+' 'log-utc-offset=' 'kubectl-host=' 'kubeconfig=' 'no-snapshot' 'every=' 'version' 'h/help'
        case 'trace'
            __svctrace_parse_subcommand 0 'client=' 'service=' 'pod=' 'node=' 'proto=' 'since=' 'until=' 'around=' 'window=' 'max=' 'format=' 'explain' 'follow' 'interval=' 'for=' 'log-path=' 'store=' 'i/inventory=+' 'l/limit=' 'f/forks=' 'timeout=' 'connect-timeout=' 'known-hosts=+' 'accept-new-host-keys' 'F=' 'u/user=' 'private-key=+' 'jump=' 'become' 'no-become' 'become-user=' 'K/ask-become-pass' 'k/ask-pass' 'v/verbose' 'version' 'h/help'
        case 'stats'
            __svctrace_parse_subcommand 0 'service=' 'since=' 'until=' 'format=' 'output=' 'store=' 'version' 'h/help'
        case 'prune'
            __svctrace_parse_subcommand 0 'older-than=' 'json' 'store=' 'version' 'h/help'
        case 'store'
            __svctrace_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'copy'
                __svctrace_parse_subcommand 0 'from=' 'to=' 'json' 'version' 'h/help'
            end
        case 'help'
            __svctrace_parse_subcommand -r 1 'version'
        end
    end
end

function __svctrace_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __svctrace_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __svctrace_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __svctrace_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__svctrace_tokens -p)
    if test -z "$(__svctrace_tokens -t)"
        set -l index (count (__svctrace_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'svctrace' -f
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'ping' -d 'Connect to every host and report what svctrace needs to know about it.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'exec' -d 'Run a shell command on every selected host and show the output grouped per host.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'install' -d 'Roll out LOG rules, an rsyslog drop-in and a logrotate entry on every selected node.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'remove' -d 'Remove svctrace\'s rules, chains, tables, drop-in, logrotate entry and expiry from every selected node.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'verify' -d 'Check, node by node, that everything install put in place is there and works.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'collect' -d 'Pull new lines of every node\'s svctrace log into the local store and correlate them.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'trace' -d 'Look up connections to Services: client → service → node → pod, with names.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'stats' -d 'Show how a Service\'s connections spread over its endpoints: counts, shares, skew.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'prune' -d 'Delete connections, raw lines, batches and name snapshots older than a given age.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'store' -d 'Whole-store operations: copy a local store into a team store and back.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" json' -l 'json' -d 'Print the per-host results as one JSON document instead of the recap.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace ping" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" json' -l 'json' -d 'Print the per-host results as one JSON document instead of the recap.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" command-timeout' -l 'command-timeout' -d 'Per-host command timeout. Default: 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace exec" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" log-path' -l 'log-path' -d 'File rsyslog writes svctrace\'s lines to (svctrace_log_path). Default: /var/log/iptables.log.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" service-cidr' -l 'service-cidr' -d 'Service network(s), comma-separated (svctrace_service_cidr). Default: learned from ServiceCIDR objects, else kube-apiserver\'s --service-cluster-ip-range, else kube-proxy\'s cluster-ips-check chain, else the Service addresses kube-proxy\'s rules hold.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" node-port-range' -l 'node-port-range' -d 'NodePort range (svctrace_nodeport_range). Default: 30000-32767.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" services' -l 'services' -d 'Log only these Services, as VIP:PORT[/proto],… (svctrace_services).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" max-rate' -l 'max-rate' -d 'Volume guard: at most N lines per second/minute per rule, e.g. 200/s (svctrace_max_rate).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" refresh' -l 'refresh' -d 'How often the node-side refresh adds new load-balancer and external IPs (every Service address without a Service CIDR) to the rules, e.g. 15s or 1m; off for none (svctrace_refresh). Default: 15s.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" json' -l 'json' -d 'Print the per-host results as one JSON document instead of the recap.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" check' -l 'check' -d 'Report per node what would change; change nothing.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" diff' -l 'diff' -d 'Show unified diffs of files and the rule lines added and removed.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" serial' -l 'serial' -d 'Roll out in batches of N nodes.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" max-fail-percent' -l 'max-fail-percent' -d 'Stop after a batch once more than P% of nodes failed.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" for' -l 'for' -d 'Time-boxed capture: the node removes everything by itself after this long (e.g. 2h), even if this workstation is gone.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace install" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" json' -l 'json' -d 'Print the per-host results as one JSON document instead of the recap.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" log-path' -l 'log-path' -d 'The log file install wrote (svctrace_log_path); used by --purge-logs.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" purge-logs' -l 'purge-logs' -d 'Also delete the collected log files on the nodes.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" legacy' -l 'legacy' -d 'Also remove the old add_iptables_log.sh script\'s rules and config lines.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace remove" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" log-path' -l 'log-path' -d 'File rsyslog writes svctrace\'s lines to (svctrace_log_path). Default: /var/log/iptables.log.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" service-cidr' -l 'service-cidr' -d 'Service network(s), comma-separated (svctrace_service_cidr). Default: learned from ServiceCIDR objects, else kube-apiserver\'s --service-cluster-ip-range, else kube-proxy\'s cluster-ips-check chain, else the Service addresses kube-proxy\'s rules hold.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" node-port-range' -l 'node-port-range' -d 'NodePort range (svctrace_nodeport_range). Default: 30000-32767.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" services' -l 'services' -d 'Log only these Services, as VIP:PORT[/proto],… (svctrace_services).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" max-rate' -l 'max-rate' -d 'Volume guard: at most N lines per second/minute per rule, e.g. 200/s (svctrace_max_rate).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" refresh' -l 'refresh' -d 'How often the node-side refresh adds new load-balancer and external IPs (every Service address without a Service CIDR) to the rules, e.g. 15s or 1m; off for none (svctrace_refresh). Default: 15s.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" store' -l 'store' -d 'The store: a local SQLite file (raw log lines in PATH.raw/ beside it), or a team store at postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (password from PGPASSWORD or ~/.pgpass, never here). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" format' -l 'format' -d 'Output format: table, json, junit or html.' -rfka 'table json junit html'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" output' -l 'output' -d 'Write the report to this file instead of standard output.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" canary' -l 'canary' -d 'Prove the whole pipeline: connect from each node to a Service and find both lines in the log.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" canary-service' -l 'canary-service' -d 'The Service the canary connects to. Default: a TCP ClusterIP from kube-proxy\'s rules.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" max-clock-offset' -l 'max-clock-offset' -d 'Warn when a node\'s clock is off by more than this many milliseconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" min-hours-until-full' -l 'min-hours-until-full' -d 'Warn when the log\'s filesystem would fill up within this many hours.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace verify" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" store' -l 'store' -d 'The store: a local SQLite file (raw log lines in PATH.raw/ beside it), or a team store at postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (password from PGPASSWORD or ~/.pgpass, never here). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" shard' -l 'shard' -d 'Collect only shard K of N of the selected hosts (1 ≤ K ≤ N): hosts are split by a hash of their name, the same on every machine and run, so N collectors with --shard 1/N … N/N each take their own hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" json' -l 'json' -d 'Print the per-host results as one JSON document instead of the recap.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" log-path' -l 'log-path' -d 'The node log to pull. Default: svctrace_log_path, else /var/log/iptables.log.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect"' -l 'from-file' -d 'Ingest a log file copied by other means (plain or gzip), as NODE=PATH (repeatable: nodes are ingested concurrently, up to --forks; one node\'s files in the order given); no SSH.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" log-utc-offset' -l 'log-utc-offset' -d 'With --from-file: the zone of traditional syslog timestamps (Mmm dd hh:mm:ss, written in the node\'s local time), e.g. +08:00. Default: UTC.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" kubectl-host' -l 'kubectl-host' -d 'Host that runs kubectl for name snapshots. Default: the first selected host of kube_control_plane.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" kubeconfig' -l 'kubeconfig' -d 'Take the name snapshot with a local kubectl and this kubeconfig instead.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" no-snapshot' -l 'no-snapshot' -d 'Do not take a Kubernetes name snapshot.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" every' -l 'every' -d 'Collect again every DURATION (e.g. 10s, 5m) over kept connections until Ctrl-C or SIGTERM.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace collect" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" client' -l 'client' -d 'Client address: IP, IP:PORT or [IPv6]:PORT.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" service' -l 'service' -d 'Service address (IP[:PORT]) or NAMESPACE/NAME.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" pod' -l 'pod' -d 'Pod address (IP) or NAMESPACE/NAME.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" node' -l 'node' -d 'Only connections DNATed by this node (inventory name).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" proto' -l 'proto' -d 'tcp, udp or sctp.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" since' -l 'since' -d 'From this time on: RFC 3339 or a duration ago (10m, 2h, 7d).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" until' -l 'until' -d 'Before this time: RFC 3339 or a duration ago.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" around' -l 'around' -d 'Connections within --window of this time (RFC 3339 or a duration ago).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" window' -l 'window' -d 'Half-width of --around.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" max' -l 'max' -d 'Print at most this many connections (a note on standard error says when the output was cut).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" format' -l 'format' -d 'table, json, jsonl or csv.' -rfka 'table json jsonl csv'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" explain' -l 'explain' -d 'Print the raw log lines behind each connection.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" follow' -l 'follow' -d 'Collect the fleet every --interval seconds and print new matching connections (needs -i).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" interval' -l 'interval' -d 'Seconds from the start of one --follow collect to the next (connections stay open: an idle round costs one exchange per node).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" for' -l 'for' -d 'Stop --follow after this long (e.g. 10m).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" log-path' -l 'log-path' -d 'The node log to pull with --follow. Default: svctrace_log_path, else /var/log/iptables.log.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" store' -l 'store' -d 'The store: a local SQLite file (raw log lines in PATH.raw/ beside it), or a team store at postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (password from PGPASSWORD or ~/.pgpass, never here). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace"' -s 'i' -l 'inventory' -d 'Ansible inventory file or directory (INI or YAML; repeatable). Default: $SVCTRACE_INVENTORY.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" l limit' -s 'l' -l 'limit' -d 'Ansible host pattern: names, globs, groups, \'a:b\' union, \'a:&b\' intersection, \'a:!b\' exclusion.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" f forks' -s 'f' -l 'forks' -d 'How many hosts to work on at once.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" timeout' -l 'timeout' -d 'Give up on a host after this many seconds, connection included; 0 for no limit. Remote commands without a limit of their own stop after 300 seconds.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" connect-timeout' -l 'connect-timeout' -d 'TCP connect and handshake timeout per host.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace"' -l 'known-hosts' -d 'OpenSSH known_hosts file (repeatable). Default: ~/.ssh/known_hosts.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" accept-new-host-keys' -l 'accept-new-host-keys' -d 'Trust and record host keys seen for the first time (like StrictHostKeyChecking=accept-new). A changed key always fails.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" F' -s 'F' -d 'ssh_config file. Default: ~/.ssh/config if present.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" u user' -s 'u' -l 'user' -d 'Login user for every host (overrides ansible_user).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace"' -l 'private-key' -d 'Private key file (repeatable; overrides ansible_ssh_private_key_file).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" jump' -l 'jump' -d 'Bastion for every host, as for ssh -J: [user@]host[:port][,...].' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" become' -l 'become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" no-become' -l 'no-become' -d 'Run commands as root through sudo. Default: the inventory\'s ansible_become.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" become-user' -l 'become-user' -d 'User to become. Default: root.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" K ask-become-pass' -s 'K' -l 'ask-become-pass' -d 'Prompt once for the sudo password (or set SVCTRACE_BECOME_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" ask-pass k' -s 'k' -l 'ask-pass' -d 'Prompt once for the SSH login password (or set SVCTRACE_SSH_PASSWORD).'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" v verbose' -l 'verbose' -s 'v' -d 'Log debug details to standard error.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace trace" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" service' -l 'service' -d 'The Service: IP[:PORT] or NAMESPACE/NAME.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" since' -l 'since' -d 'From this time on: RFC 3339 or a duration ago (10m, 2h, 7d).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" until' -l 'until' -d 'Before this time: RFC 3339 or a duration ago.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" format' -l 'format' -d 'table, json or html.' -rfka 'table json html'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" output' -l 'output' -d 'Write the report to this file instead of standard output (required for html).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" store' -l 'store' -d 'The store: a local SQLite file (raw log lines in PATH.raw/ beside it), or a team store at postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (password from PGPASSWORD or ~/.pgpass, never here). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace stats" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace prune" older-than' -l 'older-than' -d 'A duration (7d, 12h) or an RFC 3339 time: delete what is older.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace prune" json' -l 'json' -d 'Print the summary as JSON.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace prune" store' -l 'store' -d 'The store: a local SQLite file (raw log lines in PATH.raw/ beside it), or a team store at postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (password from PGPASSWORD or ~/.pgpass, never here). Default: $SVCTRACE_STORE, else $XDG_DATA_HOME/svctrace/svctrace.sqlite.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace prune" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace prune" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_positional "svctrace store" -eq 1' -fa 'copy' -d 'Copy every node\'s batches, lines, connections and name snapshots from one store into another.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store copy" from' -l 'from' -d 'The store to read: a SQLite path or a postgres:// URL.' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store copy" to' -l 'to' -d 'The store to write (created if needed).' -rfka ''
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store copy" json' -l 'json' -d 'Print the summary as JSON.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store copy" version' -l 'version' -d 'Show the version.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace store copy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'svctrace' -n '__svctrace_should_offer_completions_for_flags_or_options "svctrace help" version' -l 'version' -d 'Show the version.'
