#include "http_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <charconv>
#include <memory>

namespace visitd::websocket {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::optional<Url> parse_url(std::string_view url) {
  Url out;
  if (url.rfind("https://", 0) == 0) {
    out.tls = true;
    url.remove_prefix(8);
  } else if (url.rfind("http://", 0) == 0) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.find('@') != std::string_view::npos) return std::nullopt;  // no credentials
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:9000
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return std::nullopt;
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else {
    unsigned n = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc{} || end != port.data() + port.size() || n == 0 || n > 65535) {
      return std::nullopt;
    }
    out.port = std::string(port);
  }
  return out;
}

namespace {

/// The client's TLS settings: the system's CA store, peers verified. Made once.
net::ssl::context& tls_context() {
  static net::ssl::context ctx = [] {
    net::ssl::context c(net::ssl::context::tls_client);
    c.set_default_verify_paths();
    c.set_verify_mode(net::ssl::verify_peer);
    return c;
  }();
  return ctx;
}

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(net::any_io_executor executor, PostRequest request, Url url,
           std::function<void(PostResult)> done)
      : executor_(executor),
        resolver_(executor),
        request_(std::move(request)),
        url_(std::move(url)),
        done_(std::move(done)) {
    if (url_.tls) {
      tls_.emplace(executor, tls_context());
    } else {
      plain_.emplace(executor);
    }
  }

  void start() {
    tcp_stream().expires_after(request_.timeout);
    resolver_.async_resolve(url_.host, url_.port,
                            beast::bind_front_handler(&Exchange::on_resolve, shared_from_this()));
  }

 private:
  using Plain = beast::tcp_stream;
  using Tls = beast::ssl_stream<beast::tcp_stream>;

  beast::tcp_stream& tcp_stream() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  template <class Operation>
  void with_stream(Operation&& op) {
    if (tls_) {
      op(*tls_);
    } else {
      op(*plain_);
    }
  }

  void on_resolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (ec) return fail("resolving " + url_.host, ec);
    tcp_stream().async_connect(
        results, beast::bind_front_handler(&Exchange::on_connect, shared_from_this()));
  }

  void on_connect(beast::error_code ec, const tcp::endpoint&) {
    if (ec) return fail("connecting to " + url_.host + ":" + url_.port, ec);
    if (Tls* tls = tls_ ? &*tls_ : nullptr) {
      // SNI, and the certificate must name this host.
      if (!SSL_set_tlsext_host_name(tls->native_handle(), url_.host.c_str())) {
        return fail("TLS set-up",
                    beast::error_code(int(::ERR_get_error()), net::error::get_ssl_category()));
      }
      tls->set_verify_callback(net::ssl::host_name_verification(url_.host));
      tls->async_handshake(net::ssl::stream_base::client,
                           beast::bind_front_handler(&Exchange::on_handshake, shared_from_this()));
      return;
    }
    write();
  }

  void on_handshake(beast::error_code ec) {
    if (ec) return fail("TLS handshake with " + url_.host, ec);
    write();
  }

  void write() {
    req_.method(http::verb::post);
    req_.target(url_.target);
    req_.version(11);
    req_.set(http::field::host, url_.host);
    req_.set(http::field::user_agent, "visitd");
    req_.set(http::field::content_type, request_.content_type);
    req_.set(http::field::connection, "close");
    for (const auto& [name, value] : request_.headers) req_.set(name, value);
    req_.body() = std::move(request_.body);
    req_.prepare_payload();
    parser_.body_limit(64 * 1024);
    with_stream([&](auto& s) {
      http::async_write(s, req_,
                        beast::bind_front_handler(&Exchange::on_write, shared_from_this()));
    });
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return fail("sending to " + url_.host, ec);
    with_stream([&](auto& s) {
      http::async_read(s, buffer_, parser_,
                       beast::bind_front_handler(&Exchange::on_read, shared_from_this()));
    });
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return fail("reading the answer of " + url_.host, ec);
    const auto& res = parser_.get();
    PostResult result;
    result.status = int(res.result_int());
    result.body_start = res.body().substr(0, 200);
    if (const auto it = res.find(http::field::retry_after); it != res.end()) {
      // Seconds only; an HTTP-date is rare from the receivers we speak to, and ignored.
      unsigned seconds = 0;
      const auto v = it->value();
      const auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (err == std::errc{} && end == v.data() + v.size()) {
        result.retry_after = std::chrono::seconds(std::min(seconds, 24u * 3600u));
      }
    }
    tcp_stream().socket().shutdown(tcp::socket::shutdown_both, ec);
    finish(std::move(result));
  }

  void fail(const std::string& what, beast::error_code ec) {
    PostResult result;
    result.error = what + ": " + (ec == beast::error::timeout ? "timed out" : ec.message());
    finish(std::move(result));
  }

  void finish(PostResult result) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    net::post(executor_, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  net::any_io_executor executor_;
  tcp::resolver resolver_;
  std::optional<Plain> plain_;
  std::optional<Tls> tls_;
  PostRequest request_;
  Url url_;
  std::function<void(PostResult)> done_;
  http::request<http::string_body> req_;
  http::response_parser<http::string_body> parser_;
  beast::flat_buffer buffer_;
};

}  // namespace

void post(net::any_io_executor executor, PostRequest request,
          std::function<void(PostResult)> done) {
  auto url = parse_url(request.url);
  if (!url) {
    PostResult result;
    result.error = "not an http:// or https:// URL: " + request.url;
    net::post(executor, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
    return;
  }
  std::make_shared<Exchange>(executor, std::move(request), std::move(*url), std::move(done))
      ->start();
}

}  // namespace visitd::websocket
