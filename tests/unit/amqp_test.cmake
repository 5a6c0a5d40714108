# The unit test replaces librabbitmq's connection-level calls with a scripted fake broker
# (see the __wrap_ functions in amqp_test.c); pure helpers (tables, pools, strings) stay real.
foreach(sym
    amqp_new_connection amqp_tcp_socket_new amqp_socket_open_noblock amqp_set_handshake_timeout
    amqp_set_rpc_timeout amqp_login amqp_channel_open amqp_confirm_select amqp_get_rpc_reply
    amqp_exchange_declare amqp_queue_declare amqp_queue_bind amqp_basic_qos amqp_basic_consume
    amqp_basic_publish amqp_basic_ack amqp_basic_nack amqp_simple_wait_frame_noblock
    amqp_maybe_release_buffers amqp_send_method amqp_connection_close amqp_destroy_connection)
  target_link_options(${target} PRIVATE -Wl,--wrap=${sym})
endforeach()
